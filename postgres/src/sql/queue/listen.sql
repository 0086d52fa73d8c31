-- The listener connection's subscription to the schema's wake-ups.
LISTEN {channel}
