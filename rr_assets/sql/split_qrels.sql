-- Graded qrels of one split's queries (including documents outside a candidate-only corpus).
SELECT r.query_id, r.doc_id, r.relevance
FROM {{ ref('qrels') }} AS r
JOIN {{ ref('splits') }} AS s ON s.collection = r.collection AND s.query_id = r.query_id
WHERE r.collection = $collection AND s.split = $split
