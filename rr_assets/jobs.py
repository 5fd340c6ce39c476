"""The names of rr's jobs: the pipeline in phases, one job per partitioning (a Dagster run has one
partition key). `definitions.py` builds them; the sensors, the schedule and `rr run` name them."""

OBSERVE_COLLECTIONS_JOB, OBSERVE_PROMPTS_JOB = "rr_observe_collections", "rr_observe_prompts"
OBSERVE_ANSWERS_JOB = "rr_observe_teacher_answers"
COLLECTION_JOB, BASE_MODEL_JOB, VARIANT_JOB, REPORT_JOB = "rr_collection", "rr_base_model", "rr_teacher_and_student", "rr_report"
PHASES = (OBSERVE_COLLECTIONS_JOB, OBSERVE_PROMPTS_JOB, OBSERVE_ANSWERS_JOB, COLLECTION_JOB, BASE_MODEL_JOB, VARIANT_JOB,
          REPORT_JOB)
