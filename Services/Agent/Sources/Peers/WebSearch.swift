public import Foundation
public import PlatformCore

/// One result of a web search.
public struct WebSearchResult: Sendable, Equatable {
  public var title: String
  public var url: String
  public var snippet: String

  public init(title: String, url: String, snippet: String) {
    self.title = title
    self.url = url
    self.snippet = snippet
  }
}

/// Where the web_search plugin searches. There is one provider today (`SearxNGSearch`); another
/// is a type conforming to this.
public protocol WebSearchProvider: Sendable {
  /// At most `limit` results for `query`.
  /// - Throws: `WebSearchFailure`.
  func search(_ query: String, limit: Int, timeout: Duration) async throws -> [WebSearchResult]
}

public struct WebSearchFailure: Error, Equatable, CustomStringConvertible {
  public var description: String
  /// Worth trying again later (the provider was unreachable or failed).
  public var isTransient: Bool
}

/// A SearxNG instance's JSON API (`GET {WEB_SEARCH_URL}/search?q=…&format=json`; the instance
/// must enable the json format). The operator names it, so its host is allowed whatever its
/// address; the response is bounded to 2 MiB and each result's fields cut to a few KiB.
public struct SearxNGSearch: WebSearchProvider {
  public let baseURL: URL
  private let http: EgressHTTPClient

  public init(baseURL: URL) {
    self.baseURL = baseURL
    self.http = EgressHTTPClient(
      policy: .operatorChosen(baseURL, variable: "WEB_SEARCH_URL"), maxResponseBytes: 2 << 20)
  }

  /// From `WEB_SEARCH_URL`; nil (web search off) when it is not set.
  /// - Throws: `Environment.InvalidValue` when it is not an http(s) URL.
  public init?(environment: Environment) throws {
    guard let text = environment["WEB_SEARCH_URL"], !text.isEmpty else { return nil }
    guard let url = URL(string: text), ["http", "https"].contains(url.scheme?.lowercased() ?? ""), url.host != nil else {
      throw Environment.InvalidValue(variable: "WEB_SEARCH_URL", value: text, expected: "an http(s) URL of a SearxNG instance")
    }
    self.init(baseURL: url)
  }

  public func search(_ query: String, limit: Int, timeout: Duration) async throws -> [WebSearchResult] {
    guard var components = URLComponents(url: self.baseURL.appendingPathComponent("search"), resolvingAgainstBaseURL: false) else {
      throw WebSearchFailure(description: "The search URL could not be built", isTransient: false)
    }
    components.queryItems = [URLQueryItem(name: "q", value: query), URLQueryItem(name: "format", value: "json")]
    // `+` means a space in a query string; URLComponents leaves it as is.
    let encoded = components.percentEncodedQuery?.replacingOccurrences(of: "+", with: "%2B")
    components.percentEncodedQuery = encoded
    guard let url = components.url else { throw WebSearchFailure(description: "The search URL could not be built", isTransient: false) }
    let response: EgressHTTPClient.Response
    do {
      response = try await self.http.send("GET", url, headers: [("Accept", "application/json")], timeout: timeout)
    } catch {
      throw WebSearchFailure(description: "The search provider could not be reached: \(error.description)", isTransient: true)
    }
    guard (200..<300).contains(response.status) else {
      throw WebSearchFailure(
        description: "The search provider answered HTTP \(response.status)", isTransient: response.status >= 500 || response.status == 429)
    }
    guard let object = try? JSONValue(jsonText: String(decoding: response.body, as: UTF8.self), maxDepth: 16).objectValue,
      case .array(let results)? = object["results"]
    else { throw WebSearchFailure(description: "The search provider's answer has no results list", isTransient: false) }
    return results.prefix(limit).compactMap { result in
      guard let result = result.objectValue, let url = result["url"]?.stringValue else { return nil }
      return WebSearchResult(
        title: (result["title"]?.stringValue ?? url).truncated(toUTF8Bytes: 500), url: url.truncated(toUTF8Bytes: 2000),
        snippet: (result["content"]?.stringValue ?? "").truncated(toUTF8Bytes: 2000))
    }
  }
}
