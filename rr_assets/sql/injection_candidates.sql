-- Pairs the teacher itself labelled, with their texts, from which the prompt-injection probe samples.
SELECT j.query_id, j.doc_id, j.label, q.text AS query, trim(coalesce(c.title, '') || ' ' || c.text) AS document
FROM {{ ref('teacher_judgments') }} AS j
JOIN {{ ref('queries') }} AS q ON q.collection = j.collection AND q.query_id = j.query_id
JOIN {{ ref('corpus') }} AS c ON c.collection = j.collection AND c.doc_id = j.doc_id
WHERE j.collection = $collection AND j.prompt_variant = $prompt_variant AND j.label IS NOT NULL AND j.label_source = 'teacher'
ORDER BY j.query_id, j.doc_id
