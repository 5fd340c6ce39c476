-- A variant's training rows for the student, from at most $max_queries training queries (-1 = all)
-- taken in a stable pseudo-random order; a pair without an explanation has ''. The explanations of
-- a stable $held_out_percent of the queries are held out (''): the student's explanations of
-- those pairs are measured against them (held_out_reasons.sql).
WITH chosen AS (
    SELECT query_id, row_number() OVER (ORDER BY md5(query_id)) AS pick
    FROM (SELECT DISTINCT query_id FROM {{ ref('train_pointwise') }}
          WHERE collection = $collection AND prompt_variant = $prompt_variant)
)
SELECT t.query_id, t.doc_id, t.query, t.document, t.label,
       CASE WHEN md5_number('reasons:' || t.query_id) % 100 < $held_out_percent THEN ''
            ELSE coalesce(t.explanation, '') END AS explanation
FROM {{ ref('train_pointwise') }} AS t
JOIN chosen AS c ON c.query_id = t.query_id
WHERE t.collection = $collection AND t.prompt_variant = $prompt_variant AND ($max_queries < 0 OR c.pick <= $max_queries)
ORDER BY t.query_id, t.doc_id
