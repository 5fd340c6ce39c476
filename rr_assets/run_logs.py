"""What a run's Dagster log prints on the terminal: Dagster's console logger, less the error events
of a run that a promotion check stopped on purpose."""

from __future__ import annotations

import logging

import dagster as dg

from rr_assets.core.registry import PROMOTION_CHECKS


def _not_a_held_promotion(record: logging.LogRecord) -> bool:
    """False for the error events of a run that stopped only because a promotion check held the
    champion back: rr prints why itself ("the champion stays, because: ..."), and it is no error."""
    event = getattr(record, "dagster_meta", {}).get("dagster_event")
    error = getattr(getattr(event, "event_specific_data", None), "error", None)
    if error is None or error.cls_name != "DagsterAssetCheckFailedError":
        return True
    checks = [line.rpartition(": ")[2] for line in error.message.strip().splitlines()[1:]]
    return not checks or any(check not in PROMOTION_CHECKS for check in checks)


@dg.logger(dg.colored_console_logger.config_schema,
           description="Dagster's console logger, less the error events of a promotion held back by its checks")
def console_logger(init_context: dg.InitLoggerContext) -> logging.Logger:
    logger = dg.colored_console_logger.logger_fn(init_context)
    for handler in logger.handlers:
        handler.addFilter(_not_a_held_promotion)
    return logger
