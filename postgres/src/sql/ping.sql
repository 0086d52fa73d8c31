-- A round trip, to check a new connection.
SELECT 1
