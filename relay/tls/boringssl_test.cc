// The relay must run on BoringSSL (DESIGN.md): OpenSSL 3 headers are installed too, and picking
// them up by accident would compile but link against the wrong library.
#include <openssl/base.h>
#include <openssl/crypto.h>

#include "gtest/gtest.h"

#ifndef OPENSSL_IS_BORINGSSL
#error "BoringSSL headers are not first on the include path"
#endif

TEST(BoringSsl, IsTheLibraryInUse) {
  // The version string of BoringSSL's libcrypto names it; OpenSSL's would say "OpenSSL 3".
  EXPECT_EQ(std::string(OpenSSL_version(OPENSSL_VERSION)).find("OpenSSL 3"), std::string::npos);
  EXPECT_TRUE(FIPS_mode() == 0 || FIPS_mode() == 1);
}
