// The toggle screen: draws PresenceShell's ToggleState, sends taps to its view model.
// Behind canImport(SwiftUI) && canImport(UIKit): parsed on Linux, type-checked by Xcode.

#if canImport(UIKit) && canImport(SwiftUI)
import Presence
import PresenceShell
import SwiftUI

struct ToggleView: View {
    @ObservedObject var model: AppModel
    @State private var account = ""
    @State private var email = ""
    @State private var password = ""

    var body: some View {
        Form {
            if let s = model.state, s.signedIn {
                Section {
                    Text(s.wanted.map(Messages.status) ?? "—").font(.title) + Text(s.pending ? " (sending…)" : "")
                    ForEach([AgentStatus.online, .busy, .offline], id: \.self) { status in
                        Button(Messages.status(status)) { Task { await model.shell?.toggle.choose(status) } }
                    }
                }
                Section {
                    Text(s.connection)
                    if let c = s.chatbox { Text("\(c.text): \(c.reason)"); c.message.map { Text($0) } }
                    if s.waiting > 0 { Text("\(s.waiting) change(s) waiting") }
                    if let e = s.error { Text(e).foregroundColor(.red) }
                }
                ForEach(s.wedged, id: \.opId) { w in
                    Section {
                        Text(w.text)
                        Button("Retry") { Task { await model.shell?.toggle.retry(w.opId) } }
                        Button("Discard", role: .destructive) { Task { await model.shell?.toggle.discard(w.opId) } }
                    }
                }
                Button("Sign out") { Task { await model.shell?.toggle.signOut() } }
            } else {
                TextField("Account", text: $account)
                TextField("Email", text: $email)
                SecureField("Password", text: $password)
                Button("Sign in") { Task { await model.shell?.toggle.signIn(account: account, email: email, password: password) } }
                if let e = model.state?.signedOutBecause ?? model.state?.error { Text(e).foregroundColor(.red) }
            }
        }
    }
}
#endif
