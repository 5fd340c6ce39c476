-- The teacher's reasons that student_examples.sql held out of training (a stable
-- $held_out_percent of the queries), at most $pairs of them in a stable order: the references
-- the student's explanations are measured against.
SELECT query_id, doc_id, query, document, explanation
FROM {{ ref('train_pointwise') }}
WHERE collection = $collection AND prompt_variant = $prompt_variant AND explanation IS NOT NULL AND explanation <> ''
  AND md5_number('reasons:' || query_id) % 100 < $held_out_percent
ORDER BY md5(query_id || ':' || doc_id)
LIMIT $pairs
