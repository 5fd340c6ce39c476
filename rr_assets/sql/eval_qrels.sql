-- Graded qrels of the evaluation-split queries.
SELECT r.query_id, r.doc_id, r.relevance
FROM qrels AS r
JOIN splits AS s ON s.collection = r.collection AND s.query_id = r.query_id
WHERE r.collection = $collection AND s.split = 'eval'
