-- Parsed teacher labels beside the qrels label of the same pair (unjudged pairs count as 0),
-- for queries that have at least one qrels entry.
SELECT j.label AS teacher, coalesce(r.relevance, 0) AS gold
FROM teacher_judgments AS j
LEFT JOIN qrels AS r ON r.collection = j.collection AND r.query_id = j.query_id AND r.doc_id = j.doc_id
WHERE j.collection = $collection AND j.prompt_variant = $prompt_variant AND j.label IS NOT NULL
  AND j.query_id IN (SELECT query_id FROM qrels WHERE collection = $collection)
