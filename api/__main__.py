"""`python -m api`: the API server, the command compose and scripts/dev both run
(api/server.py)."""

from api.server import main

if __name__ == "__main__":
    main()
