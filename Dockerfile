# dav_cms in a container: SQLite in the /data volume by default,
# or PostgreSQL with -e DAV_CMS_DATABASE_URL=postgresql://...
FROM python:3.11-slim

RUN useradd --create-home --uid 1000 davcms \
    && mkdir /data && chown davcms /data
WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
COPY migrations ./migrations
COPY config ./config
RUN pip install --no-cache-dir . && rm -rf /root/.cache

USER davcms
ENV DAV_CMS_DATA_DIR=/data
VOLUME ["/data"]
EXPOSE 5232
# Create an account first:  docker run -it --rm -v davcms:/data IMAGE dav-cms user add me
ENTRYPOINT ["dav-cms"]
CMD ["serve", "--host", "0.0.0.0", "--port", "5232"]
