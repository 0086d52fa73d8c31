INSERT INTO {s}.audit (who, action, target, result, instance)
VALUES ($1, $2, $3, $4, $5)
