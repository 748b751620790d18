from setuptools import find_packages, setup

setup(
    name="voice-gateway",
    version="0.1.0",
    description="API gateway for a multi-tenant AI voice-agent SaaS",
    packages=find_packages(include=["gateway_app", "gateway_app.*", "blueprints", "blueprints.*"]),
    package_data={"gateway_app": ["migrations/*.py", "migrations/versions/*.py",
                                  "migrations/script.py.mako", "ratelimit/*.lua"],
                  "blueprints": ["console/templates/console/*.html", "console/static/*"]},
    python_requires=">=3.11",
    install_requires=[
        "flask>=3.1,<4",
        "werkzeug>=3.1,<4",   # gateway_app/compat.py extends its URL matcher
        "flask-limiter>=4.1,<5",
        "limits>=5.8,<6",
        "flask-caching>=2.5,<3",
        "pybreaker>=1.4,<2",
        "cachetools>=5.3",
        "requests>=2.32,<3",
        "httptools>=0.6,<1",  # the answers of remote instances (discovery/upstream.py)
        "gunicorn>=23",
        "gevent>=24",
        "redis[hiredis]>=6,<9",  # hiredis: the C reply parser redis-py picks up by itself
        "sqlalchemy>=2.0,<3",
        "alembic>=1.13,<2",
        "pymysql>=1.1,<2",
        "flask-smorest>=0.45,<1",
        "marshmallow>=3.20",
        "orjson>=3.9",  # read paths' answers (gateway_app/services/serialization.py)
        "pyjwt>=2.8,<3",
        "argon2-cffi>=23",
        "itsdangerous>=2.2",
        "prometheus-client>=0.20",
        "pyyaml>=6",
        "cryptography>=42",
        "phonenumbers>=8.13",
        "email-validator>=2",
        "http-sfv>=0.9",  # RateLimit headers are structured fields
        "flask-swagger-ui>=5.17,<6",  # Swagger UI's files, so /docs needs no other host
        "boto3>=1.34,<2",  # the s3:// file store (gateway_app/files/s3.py)
    ],
    extras_require={
        "test": ["pytest>=8", "responses>=0.25", "http-sfv>=0.9", "pytest-timeout>=2",
                 "pytest-xdist>=3.6",
                 "moto[server]>=5",  # a real S3 protocol server on loopback for the s3:// store
                 "selenium>=4.20",  # browser tests (tests/test_console_browser.py), Debian's chromium
                 # the OpenAPI document's proof (tests/test_openapi_*.py): fuzzing, validation,
                 # a generated Python client
                 "schemathesis>=4.30,<5", "jsonschema>=4.23", "openapi-python-client>=0.29,<0.30",
                 # tests/test_generated_clients.py: what the generated Python client imports
                 # (httpx comes with the generator), and the type checker its portal script passes
                 "attrs>=22.2", "mypy>=1.11"],
    },
    entry_points={"console_scripts": ["gateway=gateway_app.cli:main"]},
)
