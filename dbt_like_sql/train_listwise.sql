-- The teacher's listwise ranking of each training query: the final order its sliding windows
-- produced (a JSON array of document ids, best first), for the listwise loss. Queries with a
-- window that did not parse are left out; repaired permutations are kept and counted.
SELECT
    r.collection,
    r.prompt_variant,
    r.query_id,
    any_value(r.final_doc_ids) AS ranked_doc_ids,
    count(*) AS windows,
    sum(CASE WHEN r.repaired THEN 1 ELSE 0 END) AS repaired_windows
FROM {{ ref('teacher_rankings') }} AS r
JOIN {{ ref('splits') }} AS s ON s.collection = r.collection AND s.query_id = r.query_id
WHERE r.collection = $collection AND r.prompt_variant = $prompt_variant AND s.split = 'train'
GROUP BY r.collection, r.prompt_variant, r.query_id
HAVING count(r.parse_error) = 0
ORDER BY r.query_id
