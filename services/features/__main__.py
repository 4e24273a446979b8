"""python -m services.features: settings -> create_app -> servicekit.runner.run_service."""

from servicekit.runner import run_service
from services.features.app import create_app
from services.features.settings import FeaturesSettings


def main() -> None:
    settings = FeaturesSettings()
    run_service(create_app(settings), settings)


if __name__ == "__main__":
    main()
