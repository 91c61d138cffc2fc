"""mezzo's own API, one router per area; `server/app.py` includes them."""
