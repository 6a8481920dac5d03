/*
 * MeshClient — t_java's client: the JDK's two HTTP clients, by a service
 * name, and the JVM's own use of SIGSEGV while their connections live.
 *
 *   java MeshClient URL COUNT
 *
 * Prints, each line only when every request of its kind was answered 200
 * with a body that starts "java-ok":
 *   urlconnection COUNT   java.net.HttpURLConnection, one after another
 *                         (blocking calls, a connect timeout: the JDK's
 *                         NioSocketImpl connects non-blocking and polls)
 *   httpclient COUNT      java.net.http.HttpClient, all at once (a selector
 *                         thread, non-blocking SocketChannels)
 *   ports P1 P2 ...       the servers' ports that answered the httpclient's
 *   nulls N               N NullPointerExceptions caught, between requests,
 *                         from a JIT-compiled null check, which HotSpot makes
 *                         by letting the load fault (SIGSEGV) and turning
 *                         the signal into the exception (until it has seen
 *                         enough and compiles an explicit check); System.gc()
 *                         between them brings safepoints.
 * Anything else: a line "error ..." and exit status 1.
 */
import java.io.InputStream;
import java.net.HttpURLConnection;
import java.net.URI;
import java.net.URL;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.TreeSet;
import java.util.concurrent.CompletableFuture;

public class MeshClient {
    static int nulls;

    static int length(String s) {
        return s.length();      /* a null s faults here once compiled */
    }

    static void fault(int times) {
        for (int i = 0; i < times; i++) {
            try {
                length(i % 2 == 0 ? null : "x");
            } catch (NullPointerException e) {
                nulls++;
            }
        }
    }

    static String answered(int status, String body) {
        if (status != 200 || !body.startsWith("java-ok "))
            throw new IllegalStateException("status " + status + ": " + body);
        return body.split(" ")[1];
    }

    public static void main(String[] args) throws Exception {
        String base = args[0];
        int count = Integer.parseInt(args[1]);
        try {
            for (int i = 0; i < count; i++) {
                HttpURLConnection c = (HttpURLConnection) new URL(base + "/urlconnection/" + i).openConnection();
                c.setConnectTimeout(5000);
                c.setReadTimeout(10000);
                try (InputStream in = c.getInputStream()) {
                    answered(c.getResponseCode(), new String(in.readAllBytes(), StandardCharsets.UTF_8));
                }
                fault(20000);
                if (i % 5 == 0)
                    System.gc();
            }
            System.out.println("urlconnection " + count);

            HttpClient client = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1)
                    .connectTimeout(Duration.ofSeconds(5)).build();
            List<CompletableFuture<HttpResponse<String>>> pending = new ArrayList<>();
            for (int i = 0; i < count; i++)
                pending.add(client.sendAsync(HttpRequest.newBuilder(URI.create(base + "/httpclient/" + i))
                        .timeout(Duration.ofSeconds(10)).build(), HttpResponse.BodyHandlers.ofString()));
            TreeSet<String> ports = new TreeSet<>();
            for (CompletableFuture<HttpResponse<String>> f : pending) {
                HttpResponse<String> r = f.get();
                ports.add(answered(r.statusCode(), r.body()));
                fault(20000);
            }
            System.out.println("httpclient " + count);
            System.out.println("ports " + String.join(" ", ports));
            System.out.println("nulls " + nulls);
        } catch (Exception e) {
            System.out.println("error " + e);
            System.exit(1);
        }
    }
}
