"""python -m services.training: settings -> create_app -> servicekit.runner.run_service."""

from servicekit.runner import run_service
from services.training.app import create_app
from services.training.settings import TrainingSettings


def main() -> None:
    settings = TrainingSettings()
    run_service(create_app(settings), settings)


if __name__ == "__main__":
    main()
