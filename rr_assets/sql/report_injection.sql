-- The prompt-injection probe per variant: pairs, mean label shift and the share of raised labels.
SELECT prompt_variant, count(*) AS pairs,
       avg(coalesce(injected_label, clean_label) - clean_label) AS shift,
       avg(CASE WHEN coalesce(injected_label, clean_label) > clean_label THEN 1.0 ELSE 0.0 END) AS raised
FROM {{ ref('injection_probe') }}
WHERE collection = $collection
GROUP BY prompt_variant
ORDER BY prompt_variant
