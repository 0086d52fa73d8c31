-- $1 the migrations' lock key, $2 the schema's name: instances that start
-- together migrate one at a time; two schemas migrate independently.
SELECT pg_advisory_xact_lock($1, hashtext($2))
