-- wrk: the same call through the gateway (tenant w0).
wrk.method = "POST"
wrk.path = "/v1/tenants/w0/tools/get_company/calls"
wrk.body = '{"arguments":{"company_id":"w0-retail"}}'
wrk.headers["Authorization"] = "Bearer " .. os.getenv("S_JWT")
wrk.headers["Content-Type"] = "application/json"
