-- Every student's scores on the evaluation candidates, per checkpoint and inference mode.
SELECT checkpoint, prompt_variant, stage, mode, query_id, doc_id, score, explanation
FROM {{ ref('student_scores') }}
WHERE collection = $collection
