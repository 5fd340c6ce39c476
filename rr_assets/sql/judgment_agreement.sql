-- Parsed teacher labels beside the qrels grade of the same pair (unjudged pairs count as 0), for
-- queries that have qrels; labels the teacher was shown (a grounded variant's) are left out.
SELECT j.label AS teacher, coalesce(r.relevance, 0) AS gold,
       (SELECT max(relevance) FROM {{ ref('qrels') }} WHERE collection = $collection) AS max_relevance
FROM {{ ref('teacher_judgments') }} AS j
LEFT JOIN {{ ref('qrels') }} AS r ON r.collection = j.collection AND r.query_id = j.query_id AND r.doc_id = j.doc_id
WHERE j.collection = $collection AND j.prompt_variant = $prompt_variant AND j.label IS NOT NULL
  AND j.label_source = 'teacher'
  AND j.query_id IN (SELECT query_id FROM {{ ref('qrels') }} WHERE collection = $collection)
