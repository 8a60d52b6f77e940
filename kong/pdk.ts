/**
 * The narrow, typed slice of Kong's PDK this plugin uses, as kong-pdk exposes it over the plugin
 * server: every call is a round trip to Kong and returns a Promise. kong-pdk maps camelCase names
 * to Kong's snake_case functions (`getHeaders` -> `kong.request.get_headers`). Kong sends back only
 * the FIRST return value of each function (Kong >= 3.0), so a PDK error usually arrives as null.
 *
 * kong-pdk's bundled .d.ts files are not usable; this interface is ours and lists only what we call.
 */

/** `kong.request.get_headers()`: lower-cased names; a repeated header is an array of its values. */
export type KongHeaders = Readonly<Record<string, string | readonly string[]>>;

/** A consumer entity as `kong.client.load_consumer` returns it (only the fields we read are typed). */
export interface KongConsumer {
  readonly id: string;
  readonly username?: string | null;
  readonly custom_id?: string | null;
  readonly [field: string]: unknown;
}

export interface KongPdk {
  readonly request: {
    /** https://docs.konghq.com/gateway/latest/plugin-development/pdk/kong.request/#kongrequestget_headersmax_headers */
    getHeaders(maxHeaders?: number): Promise<KongHeaders | null>;
  };
  readonly client: {
    /** The direct peer address unless real_ip settings rewrite it. */
    getIp(): Promise<string | null>;
    /**
     * https://docs.konghq.com/gateway/latest/plugin-development/pdk/kong.client/#kongclientload_consumerconsumer_id-search_by_username
     * By id (a UUID; any other value raises an error), then by username when `searchByUsername`.
     */
    loadConsumer(consumerId: string, searchByUsername?: boolean): Promise<KongConsumer | null>;
    /**
     * https://docs.konghq.com/gateway/latest/plugin-development/pdk/kong.client/#kongclientauthenticateconsumer-credential
     * Sets the authenticated consumer (and credential) of the request. Access phase.
     */
    authenticate(consumer: KongConsumer | null, credential: Readonly<Record<string, unknown>> | null): Promise<void>;
  };
  readonly ip: {
    /** Whether `ip` is in Kong's `trusted_ips`. */
    isTrusted(ip: string): Promise<boolean | null>;
  };
  readonly service: {
    readonly request: {
      /**
       * https://docs.konghq.com/gateway/latest/plugin-development/pdk/kong.service.request/#kongservicerequestset_headersheaders
       * Replaces every value of each named header (any case); an empty array clears the header
       * (ngx.req.set_header with an empty table). Rewrite and access phases.
       */
      setHeaders(headers: Readonly<Record<string, string | readonly string[]>>): Promise<void>;
    };
  };
  readonly response: {
    /** Ends the request; Kong sends no further Step, so the promise resolves at once. */
    exit(status: number, body?: unknown, headers?: Readonly<Record<string, string>>): Promise<void>;
  };
  readonly ctx: {
    readonly shared: {
      set(key: string, value: unknown): Promise<void>;
    };
  };
  readonly log: {
    err(...message: string[]): Promise<void>;
    warn(...message: string[]): Promise<void>;
    info(...message: string[]): Promise<void>;
    /**
     * https://docs.konghq.com/gateway/latest/plugin-development/pdk/kong.log/#konglogset_serialize_valuekey-value-options
     * Adds `key` to what `kong.log.serialize()` returns to Kong's log plugins for this request.
     */
    setSerializeValue(key: string, value: unknown): Promise<void>;
  };
}
