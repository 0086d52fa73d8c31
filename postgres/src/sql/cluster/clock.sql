-- The database's clock, read as the statement runs (not at the start of
-- its transaction): the instance's offset is measured against it.
SELECT clock_timestamp()
