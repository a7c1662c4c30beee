# Serve a dist folder (what `mobilepack convert` wrote) over HTTP:
#   docker build -t mobilepack-serve .            (with ./dist present)
#   docker run --rm -p 8000:8000 mobilepack-serve
FROM python:3.11-slim

# opencv, which mediapipe pulls in, needs these shared libraries at import time.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md ./
COPY train ./train
COPY convert ./convert
# without benchmarks/figures, the figure scripts (.dockerignore)
COPY benchmarks ./benchmarks
COPY mobilepack ./mobilepack
RUN pip install --no-cache-dir .

COPY dist /dist
USER nobody
EXPOSE 8000
# Inside the container the server must listen on all interfaces; outside, -p decides who reaches it.
CMD ["mobilepack", "serve", "/dist", "--host", "0.0.0.0", "--port", "8000", "--workers", "4"]
