-- Preference pairs for the pairwise (RankNet) loss: within a query, a document the teacher
-- labelled higher is preferred to one it labelled lower.
SELECT
    a.collection,
    a.prompt_variant,
    a.query_id,
    a.doc_id AS preferred_doc_id,
    b.doc_id AS other_doc_id,
    a.label - b.label AS margin
FROM {{ ref('train_pointwise') }} AS a
JOIN {{ ref('train_pointwise') }} AS b
  ON a.collection = b.collection
 AND a.prompt_variant = b.prompt_variant
 AND a.query_id = b.query_id
 AND a.label > b.label
WHERE a.collection = $collection
ORDER BY a.query_id, preferred_doc_id, other_doc_id
