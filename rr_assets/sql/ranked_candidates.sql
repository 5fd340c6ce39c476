-- The candidates of one split's queries with their texts and first-stage scores, down to rank
-- $depth, for at most $queries queries (-1 = all) in a stable pseudo-random order.
WITH chosen AS (
    SELECT query_id, row_number() OVER (ORDER BY md5(query_id)) AS pick
    FROM {{ ref('splits') }}
    WHERE collection = $collection AND split = $split
)
SELECT c.query_id, c.doc_id, c.rank, c.score, q.text AS query,
       trim(coalesce(d.title, '') || ' ' || d.text) AS document
FROM {{ ref('first_stage_candidates') }} AS c
JOIN chosen AS s ON s.query_id = c.query_id
JOIN {{ ref('queries') }} AS q ON q.collection = c.collection AND q.query_id = c.query_id
JOIN {{ ref('corpus') }} AS d ON d.collection = c.collection AND d.doc_id = c.doc_id
WHERE c.collection = $collection AND c.rank <= $depth AND ($queries < 0 OR s.pick <= $queries)
ORDER BY c.query_id, c.rank
