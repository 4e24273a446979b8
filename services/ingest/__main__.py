"""python -m services.ingest: settings -> create_app -> servicekit.runner.run_service."""

from servicekit.runner import run_service
from services.ingest.app import create_app
from services.ingest.settings import IngestSettings


def main() -> None:
    settings = IngestSettings()
    run_service(create_app(settings), settings)


if __name__ == "__main__":
    main()
