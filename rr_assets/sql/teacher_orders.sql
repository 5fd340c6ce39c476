-- The teacher's listwise order of each training query, for the listwise loss.
SELECT query_id, ranked_doc_ids
FROM {{ ref('train_listwise') }}
WHERE collection = $collection AND prompt_variant = $prompt_variant
