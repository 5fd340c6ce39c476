-- The swap-consistent preferences of a variant's comparison reasoning, for the pairwise loss.
SELECT query_id, preferred_doc_id, other_doc_id
FROM {{ ref('train_pairwise') }}
WHERE collection = $collection AND prompt_variant = $prompt_variant AND source = 'comparison'
