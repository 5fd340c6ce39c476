-- The prompt variants that have student scores for a collection, for the report.
SELECT DISTINCT prompt_variant FROM {{ ref('student_scores') }} WHERE collection = $collection
UNION
SELECT DISTINCT prompt_variant FROM {{ ref('teacher_judgments') }} WHERE collection = $collection
ORDER BY prompt_variant
