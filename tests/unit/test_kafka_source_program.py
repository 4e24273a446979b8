"""infra/kafka_jars.py `source_program`: a one-file Java program is compiled once and run from its
classes; with no javac, or a source javac refuses, it runs as a source program as before."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from infra.kafka_jars import source_program

JAVA = shutil.which("java")
HELLO = 'public class Hello { public static void main(String[] a) { System.out.println("hello " + a[0]); } }'


@pytest.fixture
def jars(tmp_path: Path) -> Path:
    (tmp_path / "jars").mkdir()
    return tmp_path / "jars"


def said(command: list[str]) -> str:
    return subprocess.run([*command, "you"], capture_output=True, text=True, timeout=120, check=True).stdout


def test_compiled_once_then_run_from_its_classes(tmp_path: Path, jars: Path) -> None:
    assert JAVA is not None, "the project needs Java 17 (scripts/install.sh checks for it)"
    source = tmp_path / "Hello.java"
    source.write_text(HELLO)
    first = source_program(JAVA, jars, source)
    assert first[-1] == "Hello" and said(first) == "hello you\n"
    (built,) = (jars / "programs").iterdir()
    stamp = (built / "Hello.class").stat().st_mtime_ns
    assert source_program(JAVA, jars, source) == first
    assert (built / "Hello.class").stat().st_mtime_ns == stamp  # not compiled again
    source.write_text(HELLO.replace("hello ", "hi "))  # a changed source is compiled anew
    changed = source_program(JAVA, jars, source)
    assert changed != first and said(changed) == "hi you\n"
    assert not [p for p in (jars / "programs").iterdir() if p.name.endswith(".partial")]


def test_a_source_javac_refuses_runs_as_source(tmp_path: Path, jars: Path) -> None:
    assert JAVA is not None, "the project needs Java 17 (scripts/install.sh checks for it)"
    source = tmp_path / "Broken.java"
    source.write_text("public class Broken { this is not java }")
    command = source_program(JAVA, jars, source)
    assert command[-1] == str(source) and not list((jars / "programs").glob("*"))


def test_without_javac_beside_java_it_runs_as_source(tmp_path: Path, jars: Path) -> None:
    jre = tmp_path / "jre" / "bin"
    jre.mkdir(parents=True)
    (jre / "java").write_text("#!/bin/sh\n")
    os.chmod(jre / "java", 0o755)
    source = tmp_path / "Hello.java"
    source.write_text(HELLO)
    command = source_program(str(jre / "java"), jars, source)
    assert command[0] == str(jre / "java") and command[-1] == str(source)
    assert not (jars / "programs").exists()


def test_each_jdk_gets_an_archive_of_its_own(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from infra.kafka_jars import class_archive

    def jdk(name: str, release: str | None) -> Path:
        home = tmp_path / name
        (home / "bin").mkdir(parents=True)
        (home / "bin" / "java").write_text("#!/bin/sh\n")
        if release is not None:
            (home / "release").write_text(release)
        return home

    names = []
    for home in (jdk("a", 'JAVA_RUNTIME_VERSION="17.0.15+6"'), jdk("b", 'JAVA_RUNTIME_VERSION="17.0.16+8"')):
        monkeypatch.setenv("JAVA_HOME", str(home))
        names.append(class_archive(tmp_path / "jars").name)
    monkeypatch.setenv("JAVA_HOME", str(jdk("c", None)))  # no release file: the binary names it
    names.append(class_archive(tmp_path / "jars").name)
    assert len(set(names)) == 3 and all(n.startswith("kafka-classes-") and n.endswith(".jsa") for n in names)
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "a"))
    assert class_archive(tmp_path / "jars").name == names[0]  # the same JDK, the same archive
