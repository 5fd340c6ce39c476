-- Every variant's final listwise order of each evaluation query.
SELECT DISTINCT r.prompt_variant, r.query_id, r.final_doc_ids
FROM {{ ref('teacher_rankings') }} AS r
JOIN {{ ref('splits') }} AS s ON s.collection = r.collection AND s.query_id = r.query_id
WHERE r.collection = $collection AND s.split = 'eval'
