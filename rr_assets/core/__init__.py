"""Orchestration-free logic: every stage of the pipeline as plain, testable functions."""
