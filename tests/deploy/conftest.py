import pytest

from tests.deploy.classifier import fine_tune


@pytest.fixture(scope="session")
def classifier_dir(tmp_path_factory):
    """A small sequence classifier fine-tuned once per test session (tests/deploy/classifier.py)."""
    directory = tmp_path_factory.mktemp("fine-tuned-classifier")
    accuracy = fine_tune(directory)
    assert accuracy >= 0.95, f"the classifier did not learn its task (held-out accuracy {accuracy:.1%})"
    return directory
