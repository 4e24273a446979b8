"""python -m services.serving: settings -> create_app -> servicekit.runner.run_service."""

from servicekit.runner import run_service
from services.serving.app import create_app
from services.serving.settings import ServingSettings


def main() -> None:
    settings = ServingSettings()
    run_service(create_app(settings), settings)


if __name__ == "__main__":
    main()
