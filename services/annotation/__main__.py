"""python -m services.annotation: settings -> create_app -> servicekit.runner.run_service."""

from servicekit.runner import run_service
from services.annotation.app import create_app
from services.annotation.settings import AnnotationSettings


def main() -> None:
    settings = AnnotationSettings()
    run_service(create_app(settings), settings)


if __name__ == "__main__":
    main()
