select
    id as installment_id,
    loan_id,
    number as installment_number,
    due_date,
    amount_due_minor,
    amount_paid_minor,
    paid_on
from {{ source('lending', 'installments') }}
