// as_httpcall: asks an auth service before letting a request through.
// Built with @solo-io/proxy-runtime 0.1.8 (proxy-wasm ABI 0.2.0) and assemblyscript 0.14.9.
//
// Root ids: "as_httpcall" (recommended) and "" (also registered).
// Configuration: any short non-empty string, e.g. "{}" (the value is only logged).
//
// on_request_headers: proxy_http_call (via RootContext.httpCall) to cluster `auth_cluster` with
//   `:method GET`, `:path /auth`, `:authority auth.local`, no body, no trailers, timeout 1000 ms;
//   pauses the request (StopIteration). If the call cannot be dispatched: local reply 503.
// on_http_call_response (root context; the SDK first sets the effective context back to the
//   request's context): reads `:status` from the call's response headers and the call's body;
//   status 200 -> adds request header `x-auth: ok` and resumes (proxy_continue_stream(0));
//   anything else (including a failed call, num_headers 0) -> local reply 401.
export * from "@solo-io/proxy-runtime/proxy";
import {
  RootContext, Context, BaseContext, registerRootContext, FilterHeadersStatusValues,
  stream_context, log, LogLevelValues, send_local_response, HeaderPair, Headers,
  GrpcStatusValues, WasmResultValues,
} from "@solo-io/proxy-runtime";
import { get_buffer_bytes, BufferTypeValues } from "@solo-io/proxy-runtime/runtime";

const NAME = "as_httpcall";
const CLUSTER = "auth_cluster";
const TIMEOUT_MS: u32 = 1000;

function info(msg: string): void {
  log(LogLevelValues.info, NAME + ": " + msg);
}

function pair(key: string, value: string): HeaderPair {
  return new HeaderPair(String.UTF8.encode(key), String.UTF8.encode(value));
}

class AsHttpCallRoot extends RootContext {
  createContext(context_id: u32): Context {
    return new AsHttpCall(context_id, this);
  }

  onConfigure(configuration_size: u32): bool {
    const ok = super.onConfigure(configuration_size);
    info("configured (configuration_size " + configuration_size.toString() +
      ", configuration '" + this.getConfiguration() + "')");
    return ok;
  }
}

// The SDK has no closures: the response callback is a plain function that gets the
// originating context back.
function onAuthResponse(origin_context: Context, num_headers: u32, body_size: usize, num_trailers: u32): void {
  info("auth response for context " + origin_context.context_id.toString() + ": headers " +
    num_headers.toString() + ", body_size " + body_size.toString() + ", trailers " +
    num_trailers.toString());

  let status = "";
  let body = "";
  if (num_headers > 0) {
    status = stream_context.headers.http_callback.get(":status");
    const bytes = get_buffer_bytes(BufferTypeValues.HttpCallResponseBody, 0, body_size as u32);
    body = String.UTF8.decode(bytes);
  }
  info("auth response :status '" + status + "', body '" + body + "'");

  if (status == "200") {
    stream_context.headers.request.add("x-auth", "ok");
    info("authorized: added request header x-auth: ok, resuming the request");
    origin_context.continueRequest();
    return;
  }

  info("not authorized (status '" + status + "'): sending local reply 401");
  const extra: Headers = [];
  const result = send_local_response(401, "as_httpcall_unauthorized",
    String.UTF8.encode("unauthorized by as_httpcall"), extra, GrpcStatusValues.InvalidCode);
  info("send_local_response(401) returned " + result.toString());
}

class AsHttpCall extends Context {
  constructor(context_id: u32, root_context: AsHttpCallRoot) {
    super(context_id, root_context);
  }

  onRequestHeaders(num_headers: u32, end_of_stream: bool): FilterHeadersStatusValues {
    info("onRequestHeaders(context " + this.context_id.toString() + ", headers " +
      num_headers.toString() + ", end_of_stream " + end_of_stream.toString() + ")");

    const headers: Headers = [];
    headers.push(pair(":method", "GET"));
    headers.push(pair(":path", "/auth"));
    headers.push(pair(":authority", "auth.local"));
    const trailers: Headers = [];

    const result = this.root_context.httpCall(CLUSTER, headers, new ArrayBuffer(0), trailers,
      TIMEOUT_MS, this, onAuthResponse);
    if (result != WasmResultValues.Ok) {
      info("http call to " + CLUSTER + " failed to dispatch (result " + result.toString() +
        "): sending local reply 503");
      send_local_response(503, "as_httpcall_dispatch_failed",
        String.UTF8.encode("auth call failed"), [], GrpcStatusValues.InvalidCode);
      return FilterHeadersStatusValues.StopIteration;
    }
    info("http call to " + CLUSTER + " GET /auth dispatched: pausing the request");
    return FilterHeadersStatusValues.StopIteration;
  }

  onResponseHeaders(num_headers: u32, end_of_stream: bool): FilterHeadersStatusValues {
    const status = stream_context.headers.response.get(":status");
    info("onResponseHeaders(context " + this.context_id.toString() + ", headers " +
      num_headers.toString() + ", end_of_stream " + end_of_stream.toString() +
      "): :status " + status);
    return FilterHeadersStatusValues.Continue;
  }
}

registerRootContext((context_id: u32): RootContext => { return new AsHttpCallRoot(context_id); }, NAME);
registerRootContext((context_id: u32): RootContext => { return new AsHttpCallRoot(context_id); }, "");
