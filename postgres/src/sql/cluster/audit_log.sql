SELECT at, who, action, target, result, instance FROM {s}.audit
ORDER BY id DESC LIMIT $1
