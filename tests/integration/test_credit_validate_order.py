"""`lending credit validate-order` and the library function behind it, on real rows."""

from __future__ import annotations

from datetime import timedelta

import pytest

from lending_pipelines import cli
from lending_pipelines.assets.credit.partitions import today
from lending_pipelines.workflows.credit.validation import validate_retailer_order
from tests.credit_book import add_debit, add_retailer, at

DAY = today()


@pytest.fixture
def book(db, db_url, monkeypatch):
    monkeypatch.setattr(cli, "_operational_url", lambda: db_url)
    with db.begin() as conn:
        add_retailer(conn, "r-a", number="+919800000051", limit=100_000, max_order=60_000)
        add_retailer(conn, "r-p", number="+919800000052", status="PAUSED")
        add_debit(conn, "r-a", 70_000, created=at(DAY), due=DAY + timedelta(days=14))
    return db


@pytest.mark.parametrize(
    ("argv", "code", "printed"),
    [
        (["--retailer", "r-a", "--payment-mode", "CREDIT", "--amount", "300.00"], 0, "ALLOWED"),
        (
            ["--retailer", "r-a", "--payment-mode", "CREDIT", "--amount", "300.01"],
            1,
            "REFUSED (above_available_credit): retailer r-a: order INR 300.01 is above the "
            "available credit INR 300.00 (limit INR 1,000.00 - outstanding INR 700.00) by INR 0.01",
        ),
        (["--retailer", "r-p", "--payment-mode", "CREDIT", "--amount", "1"], 1, "credit_paused"),
        (
            ["--retailer", "r-p", "--payment-mode", "COD", "--amount", "5000"],
            0,
            "COD order allowed",
        ),
    ],
)
def test_the_cli_prints_the_decision_and_exits_by_it(book, capsys, argv, code, printed):
    assert cli.main(["credit", "validate-order", *argv]) == code
    assert printed in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        (["--retailer", "r-x", "--payment-mode", "CREDIT", "--amount", "1"], "retailer_id 'r-x'"),
        (["--retailer", "r-a", "--payment-mode", "CREDIT", "--amount", "1.005"], "'1.005'"),
        (["--retailer", "r-a", "--payment-mode", "CREDIT", "--amount", "lots"], "'lots'"),
    ],
)
def test_bad_input_exits_2_naming_the_value(book, capsys, argv, error):
    assert cli.main(["credit", "validate-order", *argv]) == 2
    assert error in capsys.readouterr().err


def test_the_ordering_platform_calls_the_library_function(book):
    with book.connect() as conn:
        decision = validate_retailer_order(
            conn, "r-a", payment_mode="CREDIT", amount=60_001, currency="INR"
        )
    assert (decision.allowed, decision.rule) == (False, "above_max_order_value")
