// as_deny: denies requests that carry an `x-deny` header (any value, any case).
// Built with @solo-io/proxy-runtime 0.1.8 (proxy-wasm ABI 0.2.0) and assemblyscript 0.14.9.
//
// Root ids: "as_deny" (recommended) and "" (also registered).
// Configuration: any short non-empty string, e.g. "{}" (the value is only logged).
//
// on_request_headers: if `x-deny` is present, sends a local reply 403 with body
//   `denied by as_deny` and header `x-denied: 1` (details "as_deny_denied") and stops;
//   otherwise continues. Logs the decision.
// on_response_headers: logs the response :status (the local reply passes through here too).
export * from "@solo-io/proxy-runtime/proxy";
import {
  RootContext, Context, registerRootContext, FilterHeadersStatusValues,
  stream_context, log, LogLevelValues, send_local_response, HeaderPair, Headers,
  GrpcStatusValues,
} from "@solo-io/proxy-runtime";

const NAME = "as_deny";

function info(msg: string): void {
  log(LogLevelValues.info, NAME + ": " + msg);
}

class AsDenyRoot extends RootContext {
  createContext(context_id: u32): Context {
    return new AsDeny(context_id, this);
  }

  onConfigure(configuration_size: u32): bool {
    const ok = super.onConfigure(configuration_size);
    info("configured (configuration_size " + configuration_size.toString() +
      ", configuration '" + this.getConfiguration() + "')");
    return ok;
  }
}

class AsDeny extends Context {
  constructor(context_id: u32, root_context: AsDenyRoot) {
    super(context_id, root_context);
  }

  onRequestHeaders(num_headers: u32, end_of_stream: bool): FilterHeadersStatusValues {
    info("onRequestHeaders(context " + this.context_id.toString() + ", headers " +
      num_headers.toString() + ", end_of_stream " + end_of_stream.toString() + ")");

    // Look through all pairs: the SDK's get() cannot tell a missing header from an empty value.
    const headers = stream_context.headers.request.get_headers();
    let found = false;
    let value = "";
    for (let i = 0; i < headers.length; i++) {
      const key = String.UTF8.decode(headers[i].key).toLowerCase();
      if (key == "x-deny") {
        found = true;
        value = String.UTF8.decode(headers[i].value);
        break;
      }
    }

    if (found) {
      info("x-deny present (value '" + value + "'): denying with 403");
      const extra: Headers = [];
      extra.push(new HeaderPair(String.UTF8.encode("x-denied"), String.UTF8.encode("1")));
      const result = send_local_response(403, "as_deny_denied",
        String.UTF8.encode("denied by as_deny"), extra, GrpcStatusValues.InvalidCode);
      info("send_local_response(403) returned " + result.toString());
      return FilterHeadersStatusValues.StopIteration;
    }

    info("no x-deny header: continuing");
    return FilterHeadersStatusValues.Continue;
  }

  onResponseHeaders(num_headers: u32, end_of_stream: bool): FilterHeadersStatusValues {
    const status = stream_context.headers.response.get(":status");
    info("onResponseHeaders(context " + this.context_id.toString() + ", headers " +
      num_headers.toString() + ", end_of_stream " + end_of_stream.toString() +
      "): :status " + status);
    return FilterHeadersStatusValues.Continue;
  }
}

registerRootContext((context_id: u32): RootContext => { return new AsDenyRoot(context_id); }, NAME);
registerRootContext((context_id: u32): RootContext => { return new AsDenyRoot(context_id); }, "");
