-- Every variant's parsed direct labels on evaluation queries, with the query text (report rows
-- and samples).
SELECT j.prompt_variant, j.query_id, j.doc_id, j.label, j.explanation, q.text AS query
FROM {{ ref('teacher_judgments') }} AS j
JOIN {{ ref('queries') }} AS q ON q.collection = j.collection AND q.query_id = j.query_id
JOIN {{ ref('splits') }} AS s ON s.collection = j.collection AND s.query_id = j.query_id
WHERE j.collection = $collection AND j.label IS NOT NULL AND s.split = 'eval'
ORDER BY j.prompt_variant, j.query_id, j.doc_id
