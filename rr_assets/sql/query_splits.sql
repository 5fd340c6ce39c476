-- Each query of a collection and its split (train, dev or eval).
SELECT query_id, split FROM {{ ref('splits') }} WHERE collection = $collection
