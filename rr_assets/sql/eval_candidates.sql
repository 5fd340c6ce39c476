-- Evaluation-split candidates with their texts, down to rank $depth.
SELECT c.query_id, c.doc_id, c.rank, c.score, q.text AS query,
       trim(coalesce(d.title, '') || ' ' || d.text) AS document
FROM candidates AS c
JOIN splits AS s ON s.collection = c.collection AND s.query_id = c.query_id
JOIN queries AS q ON q.collection = c.collection AND q.query_id = c.query_id
JOIN corpus AS d ON d.collection = c.collection AND d.doc_id = c.doc_id
WHERE c.collection = $collection AND s.split = 'eval' AND c.rank <= $depth
ORDER BY c.query_id, c.rank
