-- One row per teacher judgment on a training query that parsed into a label and an explanation.
SELECT
    j.collection,
    j.prompt_variant,
    j.query_id,
    j.doc_id,
    q.text AS query,
    trim(coalesce(c.title, '') || ' ' || c.text) AS document,
    j.label,
    j.explanation,
    j.request_hash
FROM {{ ref('teacher_judgments') }} AS j
JOIN {{ ref('splits') }} AS s ON s.collection = j.collection AND s.query_id = j.query_id
JOIN {{ ref('queries') }} AS q ON q.collection = j.collection AND q.query_id = j.query_id
JOIN {{ ref('corpus') }} AS c ON c.collection = j.collection AND c.doc_id = j.doc_id
WHERE j.collection = $collection
  AND j.prompt_variant = $prompt_variant
  AND s.split = 'train'
  AND j.label IS NOT NULL
  AND j.parse_error IS NULL
ORDER BY j.query_id, j.doc_id
