"""python -m services.drift: settings -> create_app -> servicekit.runner.run_service."""

from servicekit.runner import run_service
from services.drift.app import create_app
from services.drift.settings import DriftSettings


def main() -> None:
    settings = DriftSettings()
    run_service(create_app(settings), settings)


if __name__ == "__main__":
    main()
