"""python -m services.audit: settings -> create_app -> servicekit.runner.run_service."""

from servicekit.runner import run_service
from services.audit.app import create_app
from services.audit.settings import AuditSettings


def main() -> None:
    settings = AuditSettings()
    run_service(create_app(settings), settings)


if __name__ == "__main__":
    main()
