"""The single Definitions object of the `lending_pipelines` code location."""

from dagster import Definitions

from .resource_defs import build_resources
from .settings import get_settings

settings = get_settings()

defs = Definitions(
    assets=[],
    asset_checks=[],
    jobs=[],
    schedules=[],
    sensors=[],
    resources=build_resources(settings),
)
