"""qrgate: the software of a QR-code gate scanner on a Raspberry Pi."""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
DASHBOARD = [
    "starlette>=0.40",
    "uvicorn>=0.30",
    "jinja2>=3.1",
    "python-multipart>=0.0.9",  # Starlette's form parser
]

# Raspberry Pi OS Bookworm (64-bit: aarch64, Python 3.11): picamera2 comes from apt, built
# against apt's numpy 1.24, and the venv sees it through --system-site-packages. numpy 2
# in the venv would shadow that numpy and make `import picamera2` fail (numpy.dtype size
# changed); OpenCV 4.12 and newer require numpy 2, so the webcam extra stays below it there.
# Elsewhere (x86 development machines, newer Pi OS with numpy 2 from apt) nothing is held.
BOOKWORM_PI = "platform_machine == 'aarch64' and python_version < '3.12'"
OTHERWISE = "platform_machine != 'aarch64' or python_version >= '3.12'"
NUMPY = [f"numpy>=1.24,<2; {BOOKWORM_PI}", f"numpy>=1.24; {OTHERWISE}"]
OPENCV = [
    f"opencv-python-headless>=4.8,<4.12; {BOOKWORM_PI}",
    f"opencv-python-headless>=4.8; {OTHERWISE}",
]


def read_version() -> str:
    namespace: dict[str, str] = {}
    exec((HERE / "scanner" / "_version.py").read_text(), namespace)  # noqa: S102
    return namespace["__version__"]


setup(
    name="qrgate",
    version=read_version(),
    description="QR-code gate scanner: local decisions, turnstile relay, loss-free MQTT events",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.11",
    packages=find_packages(include=["scanner*", "firmware*", "mqtt*", "monitor*"]),
    package_data={
        "scanner": ["py.typed"],
        "firmware": ["py.typed"],
        "mqtt": ["py.typed"],
        "monitor": ["py.typed"],
        "monitor.dashboard": ["templates/*.html", "static/*"],
    },
    install_requires=[
        "click>=8.1",
        # The config, the event schema and the command arguments: typed, validated structs,
        # at a tenth of pydantic's resident weight (docs/scanning.md, Memory).
        "msgspec>=0.18",
        *NUMPY,
        "pillow>=10",
        "segno>=1.6",
        "zxing-cpp>=3.0",  # BarcodeFormat.QRCode covers the whole QR family
        "pyzbar>=0.1.9",
        "paho-mqtt>=2.0,<3",
        "gpiozero>=2.0",
        "PyJWT[crypto]>=2.8",
        "cryptography>=41",
        # Health certificates (EU DCC, "HC1:"): Base45 (RFC 9285) and CBOR (RFC 8949);
        # cbor2 6 decodes iteratively, with a depth limit and duplicate-key refusal.
        "base45>=0.4.4",
        "cbor2>=6.1,<7",
        "rich>=13",
    ],
    extras_require={
        # On Raspberry Pi OS, picamera2 and lgpio come from apt (python3-picamera2,
        # python3-lgpio) and reach the venv through --system-site-packages: picamera2 is
        # not installable from PyPI off a Pi. RPi.GPIO is the fallback pin library for
        # older boards (never a Pi 5). 64-bit only: 32-bit Raspberry Pi OS (armv7l) has
        # no wheels of zxing-cpp, pillow or cffi 2 for Python 3.11 (docs/install.md).
        "pi": ["RPi.GPIO>=0.7; platform_machine=='aarch64'"],
        "webcam": OPENCV,
        # The monitor's store on PostgreSQL, and its Prometheus metrics endpoint.
        "central": ["psycopg[binary]>=3.1", "prometheus-client>=0.20"],
        # The monitor's web dashboard (`qrgate monitor --http`, `qrgate dashboard`).
        "dashboard": DASHBOARD,
        "dev": [
            "pytest>=8",
            "pytest-timeout>=2.2",
            "hypothesis>=6.100",
            "jsonschema>=4.20",
            "types-jsonschema>=4.20",  # mypy checks tests/support, which validates events
            "ruff>=0.6",
            "mypy>=1.10",
            "psycopg[binary]>=3.1",
            "prometheus-client>=0.20",
            "pyyaml>=6",  # the docs' Prometheus alert rules are checked as YAML
            "types-PyYAML>=6",
            *OPENCV,
            "py-spy>=0.3",  # bench.gate: which of the daemon's threads uses the CPU
            *DASHBOARD,
            "httpx2>=2.0",  # Starlette's test client
            "selenium>=4.20",  # drives Debian's chromium through its chromedriver
        ],
    },
    entry_points={"console_scripts": ["qrgate=scanner.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Operating System :: POSIX :: Linux",
        "Topic :: System :: Hardware",
    ],
)
