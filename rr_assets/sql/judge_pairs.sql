-- The (query, candidate) pairs the teacher judges: the top $depth BM25 candidates of each query,
-- for at most $max_queries queries (0 = all) taken in a stable pseudo-random order.
WITH chosen AS (
    SELECT query_id, text
    FROM queries
    WHERE collection = $collection
    ORDER BY md5(query_id)
    LIMIT CASE WHEN $max_queries > 0 THEN $max_queries ELSE NULL END
)
SELECT c.query_id, c.doc_id, q.text AS query, trim(coalesce(d.title, '') || ' ' || d.text) AS document
FROM candidates AS c
JOIN chosen AS q ON q.query_id = c.query_id
JOIN corpus AS d ON d.collection = c.collection AND d.doc_id = c.doc_id
WHERE c.collection = $collection AND c.rank <= $depth
ORDER BY c.query_id, c.rank
