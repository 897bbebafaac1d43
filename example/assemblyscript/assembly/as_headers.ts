// as_headers: edits request and response headers.
// Built with @solo-io/proxy-runtime 0.1.8 (proxy-wasm ABI 0.2.0) and assemblyscript 0.14.9.
//
// Root ids: "as_headers" (recommended) and "" (also registered).
// Configuration: any short non-empty string, e.g. "{}" (the value is only logged).
//
// on_request_headers: adds `x-as-added: 1`, replaces `user-agent` with `pwcli-as`,
//                     removes `x-remove-me`; logs each edit.
// on_response_headers: adds `x-as-response: yes`; logs it.
export * from "@solo-io/proxy-runtime/proxy";
import {
  RootContext, Context, registerRootContext, FilterHeadersStatusValues,
  stream_context, log, LogLevelValues,
} from "@solo-io/proxy-runtime";

const NAME = "as_headers";

function info(msg: string): void {
  log(LogLevelValues.info, NAME + ": " + msg);
}

class AsHeadersRoot extends RootContext {
  createContext(context_id: u32): Context {
    return new AsHeaders(context_id, this);
  }

  onConfigure(configuration_size: u32): bool {
    const ok = super.onConfigure(configuration_size);
    info("configured (configuration_size " + configuration_size.toString() +
      ", configuration '" + this.getConfiguration() + "')");
    return ok;
  }
}

class AsHeaders extends Context {
  constructor(context_id: u32, root_context: AsHeadersRoot) {
    super(context_id, root_context);
  }

  onRequestHeaders(num_headers: u32, end_of_stream: bool): FilterHeadersStatusValues {
    info("onRequestHeaders(context " + this.context_id.toString() + ", headers " +
      num_headers.toString() + ", end_of_stream " + end_of_stream.toString() + ")");

    stream_context.headers.request.add("x-as-added", "1");
    info("request: added x-as-added: 1");

    const old_agent = stream_context.headers.request.get("user-agent");
    stream_context.headers.request.replace("user-agent", "pwcli-as");
    info("request: replaced user-agent '" + old_agent + "' with 'pwcli-as'");

    stream_context.headers.request.remove("x-remove-me");
    info("request: removed x-remove-me");

    return FilterHeadersStatusValues.Continue;
  }

  onResponseHeaders(num_headers: u32, end_of_stream: bool): FilterHeadersStatusValues {
    info("onResponseHeaders(context " + this.context_id.toString() + ", headers " +
      num_headers.toString() + ", end_of_stream " + end_of_stream.toString() + ")");
    stream_context.headers.response.add("x-as-response", "yes");
    info("response: added x-as-response: yes");
    return FilterHeadersStatusValues.Continue;
  }
}

registerRootContext((context_id: u32): RootContext => { return new AsHeadersRoot(context_id); }, NAME);
registerRootContext((context_id: u32): RootContext => { return new AsHeadersRoot(context_id); }, "");
