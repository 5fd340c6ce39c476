-- The labels a prompt variant's direct judgments gave (for choosing comparison pairs).
SELECT query_id, doc_id, label
FROM {{ ref('teacher_judgments') }}
WHERE collection = $collection AND prompt_variant = $prompt_variant AND label IS NOT NULL
